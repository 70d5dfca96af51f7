"""The GitHub side of issue-labeler: webhook, queue, GitHub client, per-repo config, label
policy and the store of events. It uses ``labeler`` only through loading a bundle and
predicting."""
