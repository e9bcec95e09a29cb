order-placed = 주문 { $number }({ $total })이 접수되었습니다. 결제가 확인되면 알려 드리겠습니다.
    .subject = 주문 { $number } 접수
order-paid = 주문 { $number }({ $total })의 결제가 확인되었습니다. 상품을 준비하고 있습니다.
    .subject = 주문 { $number } 결제 완료
order-canceled = 주문 { $number }이 취소되었습니다. 결제된 금액은 원래 결제 수단으로 환불됩니다.
    .subject = 주문 { $number } 취소
order-fulfilled = 주문 { $number }이 { $carrier }(으)로 발송되었습니다. 운송장 번호: { $tracking }
    .subject = 주문 { $number } 발송
