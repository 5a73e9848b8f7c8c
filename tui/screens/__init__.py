"""One module per screen of the console; each screen's styles sit beside it."""
