# master/: filled in as it lands
