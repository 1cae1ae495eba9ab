"""perpdeck trading engine: sans-I/O pipeline, exchange ports, state. Never imports textual or torch."""
