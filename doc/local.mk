# doc/: filled in as it lands
EXTRA_DIST += doc/DESIGN.md
