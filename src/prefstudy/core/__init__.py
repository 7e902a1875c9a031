"""The ground floor every layer may import: console and log file, run-directory files, secrets, package paths."""
