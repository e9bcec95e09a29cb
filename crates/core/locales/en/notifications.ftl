# Buyer notifications. Arguments: $number (order number), $total ("39000 KRW"),
# $carrier and $tracking (fulfilled only). Message ids are event types with "-" for ".".
order-placed = We received your order { $number } ({ $total }). We will let you know when payment is confirmed.
    .subject = Order { $number } received
order-paid = Payment for order { $number } ({ $total }) is confirmed. We are preparing your parcel.
    .subject = Order { $number }: payment confirmed
order-canceled = Order { $number } was canceled. Any payment taken will be refunded to the original method.
    .subject = Order { $number } canceled
order-fulfilled = Order { $number } is on its way with { $carrier }. Tracking number: { $tracking }.
    .subject = Order { $number } shipped
