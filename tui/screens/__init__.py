"""The console's screens: the main dashboard and its modal dialogs."""
