"""Reinforcement learning for perpdeck (issue 8).

``rl.env``: the gymnasium environment over historical 1m klines, booked with the sim exchange's fill,
fee, margin, funding and liquidation model; ``rl.features``: its causal, precomputed market features;
``rl.data``: kline/funding loading into numpy arrays. This package is the only one that may import
torch / stable-baselines3; importing ``rl`` itself imports nothing heavy.
"""
