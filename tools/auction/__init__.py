"""tools/auction: the auction simulator.

- ``core.clear_auctions``: clears many auctions at once (second price, first price, GSP with quality,
  reserve, position CTR); ``core.vcg_prices`` for comparisons with VCG.
- ``simulate.market_arrays`` / ``simulate.simulate_days`` (contract C): keyword/campaign days with
  seasonality, events, a Poisson competitor field, GSP slots and prices, cannibalized organic sales and
  budget pacing; exact expected values or one sampled day, with common random numbers.
- ``landscape.bid_landscape`` / ``what_if`` / ``optimal_bid``: bid curves with Monte Carlo intervals,
  a change against the status quo, the best bid for incremental profit or a target ACoS/ROAS.
"""
