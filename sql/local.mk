# sql/: filled in as it lands
