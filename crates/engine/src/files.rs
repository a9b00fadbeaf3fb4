//! Container files and figures: archive (`docker cp`), export, top, stats, commit.
