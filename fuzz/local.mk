# fuzz/: filled in as it lands
