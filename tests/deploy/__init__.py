"""The deployment files in deploy/ (systemd units, the container image and compose file, Grafana)."""
