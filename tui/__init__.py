"""The perpdeck console (Textual). Reads engine snapshots through ``engine.facade``, sends commands."""
