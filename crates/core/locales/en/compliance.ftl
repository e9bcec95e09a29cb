# Compliance violations. Arguments vary by message: $country (destination),
# $authority, $expired, $ingredient, $limit, $actual, $kinds, $currency.
violation-country_not_served = We do not ship to { $country } at the moment.
violation-not_registered = { $expired ->
    [none] This product is not registered with { $authority } for sale in { $country }.
   *[other] This product's { $authority } registration for { $country } expired on { $expired }.
}
violation-halal_required = This product needs a valid halal certificate to be sold in { $country }.
violation-ingredient_prohibited = { $ingredient } may not be sold as a supplement in { $country }.
violation-dose_limit_exceeded = The daily dose of { $ingredient } ({ $actual }) is above the { $country } limit of { $limit }.
violation-quantity_limit_exceeded = { $window ->
    [none] A personal import into { $country } allows at most { $limit } units; this cart has { $actual }.
   *[other] A personal import into { $country } allows at most { $limit } units in { $window } days; with your earlier orders this makes { $actual }.
}
violation-value_limit_exceeded = { $actual ->
    [unknown] A personal import into { $country } may be worth at most { $limit }; this cart's value cannot be checked against it (no exchange rate).
   *[other] { $window ->
        [none] A personal import into { $country } may be worth at most { $limit }; this cart is worth { $actual }.
       *[other] Personal imports into { $country } may be worth at most { $limit } in { $window } days; with your earlier orders this makes { $actual }.
    }
}
violation-annual_limit_exceeded = { $actual ->
    [unknown] Your imports into { $country } this year cannot be checked against the yearly limit of { $limit } (no exchange rate).
   *[other] This order would bring your imports into { $country } this year to { $actual }, above the yearly limit of { $limit }.
}
violation-buyer_id_required = Customs in { $country } need one of these identifiers from the buyer: { $kinds }.
violation-buyer_id_invalid = The identifier given is not accepted by customs in { $country }; give one of: { $kinds }.
violation-exchange_rate_missing = Duties and taxes for { $country } cannot be computed at the moment (no { $currency } exchange rate); this order cannot be placed yet.
landed-cost-note = Estimate of duties and import taxes; customs assess the final amount.
