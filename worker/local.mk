# worker/: filled in as it lands
