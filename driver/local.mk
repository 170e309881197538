# driver/: filled in as it lands
