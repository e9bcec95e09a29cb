violation-country_not_served = Saat ini kami tidak mengirim ke { $country }.
violation-not_registered = { $expired ->
    [none] Produk ini tidak terdaftar di { $authority } untuk dijual di { $country }.
   *[other] Registrasi { $authority } produk ini untuk { $country } berakhir pada { $expired }.
}
violation-halal_required = Produk ini memerlukan sertifikat halal yang berlaku untuk dijual di { $country }.
violation-ingredient_prohibited = { $ingredient } tidak boleh dijual sebagai suplemen di { $country }.
violation-dose_limit_exceeded = Dosis harian { $ingredient } ({ $actual }) melebihi batas { $country } sebesar { $limit }.
violation-quantity_limit_exceeded = { $window ->
    [none] Impor pribadi ke { $country } dibatasi paling banyak { $limit } unit; keranjang ini berisi { $actual }.
   *[other] Impor pribadi ke { $country } dibatasi paling banyak { $limit } unit dalam { $window } hari; bersama pesanan sebelumnya menjadi { $actual }.
}
violation-value_limit_exceeded = { $actual ->
    [unknown] Impor pribadi ke { $country } bernilai paling banyak { $limit }; nilai keranjang ini tidak dapat dibandingkan dengan batas itu (tidak ada kurs).
   *[other] { $window ->
        [none] Impor pribadi ke { $country } bernilai paling banyak { $limit }; keranjang ini bernilai { $actual }.
       *[other] Impor pribadi ke { $country } bernilai paling banyak { $limit } dalam { $window } hari; bersama pesanan sebelumnya menjadi { $actual }.
    }
}
violation-annual_limit_exceeded = { $actual ->
    [unknown] Total impor Anda ke { $country } tahun ini tidak dapat dibandingkan dengan batas tahunan { $limit } (tidak ada kurs).
   *[other] Pesanan ini membuat total impor Anda ke { $country } tahun ini menjadi { $actual }, melebihi batas tahunan { $limit }.
}
violation-buyer_id_required = Bea cukai { $country } memerlukan salah satu identitas pembeli berikut: { $kinds }.
violation-buyer_id_invalid = Identitas yang diberikan tidak diterima bea cukai { $country }; berikan salah satu dari: { $kinds }.
violation-exchange_rate_missing = Bea dan pajak untuk { $country } belum dapat dihitung (tidak ada kurs { $currency }); pesanan ini belum dapat dibuat.
landed-cost-note = Perkiraan bea masuk dan pajak impor; jumlah akhir ditetapkan oleh bea cukai.
