# tests/db/: suites register here
