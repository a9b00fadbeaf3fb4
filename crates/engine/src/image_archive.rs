//! Image archives and housekeeping: save, load, history, prune, disk usage, login.
