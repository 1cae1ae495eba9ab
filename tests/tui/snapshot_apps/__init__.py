"""Apps for snapshot and Pilot tests, built over the deterministic FakeFacade."""
