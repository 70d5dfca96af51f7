"""issue-labeler's ML side: data loading, label maps, splits, strategies, decision rules,
metrics and model bundles. No Flask or GitHub-webhook code lives here, so the package is
usable on its own (a maintainer's notebook, the experiment scripts, the bot).

The small surface the bot uses::

    from labeler.bundle import Bundle
    bundle = Bundle.load("path/to/bundle")
    bundle.predict(["title\\n\\nbody"])       # -> [[Prediction(label, score), ...]]
"""

__version__ = "0.1.0"
