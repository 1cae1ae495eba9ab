"""The panes of the main screen. Each one shows a slice of an engine snapshot."""
