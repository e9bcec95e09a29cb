order-placed = Pesanan { $number } ({ $total }) sudah kami terima. Kami akan mengabari Anda setelah pembayaran dikonfirmasi.
    .subject = Pesanan { $number } diterima
order-paid = Pembayaran pesanan { $number } ({ $total }) sudah dikonfirmasi. Paket Anda sedang kami siapkan.
    .subject = Pesanan { $number }: pembayaran dikonfirmasi
order-canceled = Pesanan { $number } dibatalkan. Pembayaran yang sudah diterima akan dikembalikan ke metode semula.
    .subject = Pesanan { $number } dibatalkan
order-fulfilled = Pesanan { $number } sedang dikirim dengan { $carrier }. Nomor resi: { $tracking }.
    .subject = Pesanan { $number } dikirim
