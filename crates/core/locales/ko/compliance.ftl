violation-country_not_served = 현재 { $country }(으)로는 배송하지 않습니다.
violation-not_registered = { $expired ->
    [none] 이 상품은 { $country } 판매를 위한 { $authority } 등록이 없습니다.
   *[other] 이 상품의 { $country } { $authority } 등록이 { $expired }에 만료되었습니다.
}
violation-halal_required = 이 상품을 { $country }에서 판매하려면 유효한 할랄 인증이 필요합니다.
violation-ingredient_prohibited = { $ingredient }은(는) { $country }에서 건강기능식품으로 판매할 수 없습니다.
violation-dose_limit_exceeded = { $ingredient }의 1일 섭취량({ $actual })이 { $country } 기준 { $limit }을(를) 넘습니다.
violation-quantity_limit_exceeded = { $window ->
    [none] { $country } 개인 수입은 최대 { $limit }개까지 가능합니다. 현재 장바구니는 { $actual }개입니다.
   *[other] { $country } 개인 수입은 { $window }일 동안 최대 { $limit }개까지 가능합니다. 이전 주문을 합하면 { $actual }개입니다.
}
violation-value_limit_exceeded = { $actual ->
    [unknown] { $country } 개인 수입은 최대 { $limit }까지 가능합니다. 환율이 없어 이 장바구니 금액을 한도와 비교할 수 없습니다.
   *[other] { $window ->
        [none] { $country } 개인 수입은 최대 { $limit }까지 가능합니다. 현재 장바구니 금액은 { $actual }입니다.
       *[other] { $country } 개인 수입은 { $window }일 동안 최대 { $limit }까지 가능합니다. 이전 주문을 합하면 { $actual }입니다.
    }
}
violation-annual_limit_exceeded = { $actual ->
    [unknown] 환율이 없어 올해 { $country } 수입 금액을 연간 한도 { $limit }와(과) 비교할 수 없습니다.
   *[other] 이 주문으로 올해 { $country } 수입 금액이 { $actual }이(가) 되어 연간 한도 { $limit }을(를) 넘습니다.
}
violation-buyer_id_required = { $country } 통관에는 구매자의 다음 식별번호 중 하나가 필요합니다: { $kinds }.
violation-buyer_id_invalid = 입력한 식별번호는 { $country } 통관에 사용할 수 없습니다. 다음 중 하나를 입력하세요: { $kinds }.
violation-exchange_rate_missing = 지금은 { $country }의 관세와 세금을 계산할 수 없어({ $currency } 환율 없음) 주문할 수 없습니다.
landed-cost-note = 관세 및 수입세 예상액입니다. 최종 금액은 세관이 정합니다.
