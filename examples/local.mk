# examples/: filled in as it lands
