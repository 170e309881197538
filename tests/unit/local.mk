# tests/unit/: suites register here
