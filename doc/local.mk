# doc/: filled in as it lands
