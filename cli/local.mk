# cli/: filled in as it lands
