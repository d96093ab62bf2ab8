"""``fit(X, y, sample_weight, **params)`` of the CV estimators: metadata for the splitter.

As in :class:`~sklearn.model_selection.GridSearchCV`, ``groups`` always reaches the
``split`` of ``cv``; any other parameter needs scikit-learn's metadata routing
(``sklearn.set_config(enable_metadata_routing=True)``), under which ``fit`` forwards
to ``cv.split`` what the splitter requests, as :class:`~sklearn.linear_model.LassoCV`
does.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.model_selection import check_cv
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing

from .utils._sklearn_compat import _raise_for_params, _routing_enabled

# ``**params`` in the numpydoc of the estimators' ``fit``, replacing ``{params}`` there.
FIT_PARAMS_DOC = """**params : dict
            Metadata for the ``split`` method of ``cv``. ``groups`` (array-like of shape
            (n_samples,)) is always accepted and passed on, as by
            :class:`~sklearn.model_selection.GridSearchCV`: the group labels of a group
            splitter such as :class:`~sklearn.model_selection.GroupKFold`; with early
            stopping, whole groups are held out too. Other parameters need
            ``sklearn.set_config(enable_metadata_routing=True)``; with it, ``fit``
            passes to the splitter what the splitter requests (see
            :meth:`get_metadata_routing` and scikit-learn's Metadata Routing guide)."""


class SplitterRoutingMixin:
    """``get_metadata_routing`` of an estimator whose ``fit`` calls ``cv.split``."""

    def get_metadata_routing(self):
        """Get metadata routing of this object.

        ``fit`` consumes ``sample_weight`` itself and routes to the ``split`` method of
        ``cv`` the metadata it requests (``groups`` for the group splitters). Used when
        ``sklearn.set_config(enable_metadata_routing=True)``; see scikit-learn's
        Metadata Routing User Guide.

        Returns
        -------
        routing : MetadataRouter
            A :class:`~sklearn.utils.metadata_routing.MetadataRouter` encapsulating
            routing information.
        """
        # The owner as a name: scikit-learn >= 1.8 also takes the object, older ones
        # print it as is in their messages.
        return (MetadataRouter(owner=type(self).__name__)
                .add_self_request(self)
                .add(splitter=_splitter(self.cv),
                     method_mapping=MethodMapping().add(caller="fit", callee="split")))

    def _split_params(self, params, sample_weight):
        """The keyword arguments of ``cv.split`` among ``fit``'s ``**params``.

        Raises scikit-learn's ValueError for parameters other than ``groups`` without
        metadata routing (TypeError with it, for what nothing requests), and a ValueError
        when ``cv`` splits by groups and none were given.
        """
        if _routing_enabled():
            routed = process_routing(self, "fit", sample_weight=sample_weight, **params)
            split = dict(routed.splitter.split)
        else:
            _raise_for_params({k: v for k, v in params.items() if k != "groups"}, self, "fit")
            split = {} if params.get("groups") is None else {"groups": params["groups"]}
        splitter = _splitter(self.cv)
        if split.get("groups") is None and _requests_groups(splitter):
            raise ValueError(f"{type(self).__name__}: cv={splitter!r} splits by groups; "
                             f"pass them to fit: fit(X, y, groups=groups)")
        return split


def check_groups(split_params, n_samples):
    """ValueError naming ``groups`` when it does not have one label per sample."""
    groups = split_params.get("groups")
    if groups is not None and len(np.asarray(groups)) != n_samples:
        raise ValueError(f"groups must have one label per sample: got {len(groups)} "
                         f"labels for n_samples={n_samples}")


def _splitter(cv):
    """``cv`` as :func:`~sklearn.model_selection.check_cv` makes it, for its metadata
    requests only: an iterable of splits (which requests none) is not read, since a
    generator can be read once, by ``fit``."""
    is_splitter = cv is None or isinstance(cv, Integral) or hasattr(cv, "split")
    return check_cv(cv if is_splitter else [])


def _requests_groups(splitter):
    """Whether ``splitter.split`` requests ``groups`` (True, or an alias): the group
    splitters of scikit-learn do; KFold, a list of splits or a splitter without metadata
    requests do not."""
    try:
        request = splitter.get_metadata_routing().split.requests.get("groups")
    except AttributeError:
        return False
    # Aliases are identifiers; the markers UNUSED / WARN / UNCHANGED start with "$".
    return request is True or (isinstance(request, str) and not request.startswith("$"))
