"""Warnings that point at the user's line, not into the package.

A fixed ``stacklevel`` counts frames from the ``warnings.warn`` call, but a fit reaches it
through a varying number of them: scikit-learn's ``_fit_context`` wrapper, the thread
wrapper of ``utils/_threads.py``, the estimator's ``fit`` and the shared helper that
warns. ``warn`` walks out of those frames instead (what ``skip_file_prefixes`` does from
Python 3.12), so a ConvergenceWarning names the line that called ``fit`` -- or
``cross_val_score`` / ``GridSearchCV.fit``, when scikit-learn called it for the user.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings


def _package_dir(name):
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    return None if origin is None else os.path.dirname(os.path.abspath(origin)) + os.sep


# Frames in these folders are the machinery between the user and the warning: this package,
# scikit-learn (its fit wrappers, its CV tools that call fit) and joblib (which runs them).
_MACHINERY = tuple(d for d in map(_package_dir, ("skbilevel", "sklearn", "joblib")) if d)


def warn(message, category=UserWarning):
    """``warnings.warn(message, category)`` attributed to the first frame outside
    skbilevel, scikit-learn and joblib (the outermost frame when there is none, as in a
    worker thread)."""
    frame, level = sys._getframe(1), 2  # level 2: the caller of warn
    while frame.f_back is not None and \
            os.path.abspath(frame.f_code.co_filename).startswith(_MACHINERY):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
