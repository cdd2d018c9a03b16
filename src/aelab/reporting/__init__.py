"""Tables from run folders: the sweep report, published references beside our numbers, the table cell."""
