"""The one module that imports private scikit-learn API, so upgrades touch one file."""

from numbers import Integral

from sklearn.base import _fit_context  # noqa: F401
from sklearn.utils._optional_dependencies import check_matplotlib_support  # noqa: F401
from sklearn.utils._param_validation import Interval, StrOptions  # noqa: F401
from sklearn.utils._plotting import _validate_score_name  # noqa: F401
from sklearn.utils.metadata_routing import _raise_for_params, _routing_enabled  # noqa: F401
from sklearn.utils.validation import (_check_method_params, _check_sample_weight,  # noqa: F401
                                      validate_data)


def _constant_splits_fallback(cv):
    """Whether ``cv.split`` yields the same folds at every call, by scikit-learn's rule (a
    splitter without ``shuffle`` is assumed to shuffle, one without ``random_state`` not
    to be random); for versions without ``_yields_constant_splits``."""
    shuffle = getattr(cv, "shuffle", True)
    random_state = getattr(cv, "random_state", 0)
    return isinstance(random_state, Integral) or not shuffle


try:  # in scikit-learn 1.7 to 1.9, but private
    from sklearn.model_selection._split import _yields_constant_splits
except ImportError:
    _yields_constant_splits = _constant_splits_fallback

try:  # scikit-learn >= 1.9: set_callbacks(ProgressBar(), ...) on the estimators
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # older: no callback API, nothing to support
    class CallbackSupportMixin:
        """Stand-in for scikit-learn < 1.9, which has no callback API."""

__all__ = ["_fit_context", "CallbackSupportMixin", "Interval", "StrOptions",
           "_check_method_params", "_check_sample_weight", "_raise_for_params",
           "_routing_enabled", "_validate_score_name", "_yields_constant_splits",
           "check_matplotlib_support", "validate_data"]
