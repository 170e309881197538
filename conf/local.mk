# conf/: filled in as it lands
