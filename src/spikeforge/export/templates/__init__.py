"""Stand-alone simulator scripts written by ``spikeforge export`` (copied verbatim)."""
