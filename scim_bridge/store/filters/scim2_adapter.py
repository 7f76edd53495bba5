"""The part of scim2-models the translation uses beyond its plain public API, in one place.

The SQL must bind names and refuse operators exactly as ``ScimFilter.match`` does, so it calls the
functions scim2-models' own evaluator calls. Binding goes through the public
``ScimFilter.resolve``/``resolve_comparison`` (the methods scim2-models documents for
transpilers); checking an operator and a value selection has no public form, so those two are
scim2-models' private ``_validate_operator`` and ``_validate_value_selection``, imported here and
nowhere else. ``tests/store/test_scim2_adapter.py`` pins what each of them answers, so that a
scim2-models release that changes them fails there, by name, before a search goes wrong.
"""

from __future__ import annotations

from importlib.metadata import version

from scim2_models import BaseModel
from scim2_models import ScimFilter
from scim2_models.path import AttributeBinding
from scim2_models.path import AttrPath
from scim2_models.path import CompareOperator
from scim2_models.path import Present

try:
    from scim2_models.path.resolution import _validate_operator
    from scim2_models.path.resolution import _validate_value_selection
except ImportError as error:  # pragma: no cover - only when scim2-models changes under us
    raise ImportError(
        f"scim2-models {version('scim2-models')} changed under the SQL translation ({error}): "
        "adapt scim_bridge/store/filters/scim2_adapter.py"
    ) from error


def bind_path(
    model: type[BaseModel], path: AttrPath, *, strict: bool, comparison: bool = False
) -> AttributeBinding | None:
    """The attribute ``path`` names on ``model``, as ``ScimFilter.match`` binds it.

    With ``comparison``, a multi-valued complex attribute means its ``value`` (``emails co "x"``).
    An unknown attribute raises ``InvalidFilterException`` under ``strict``, and answers None
    otherwise. The filter ``path pr``, bound to ``model``, is only the carrier of the public
    ``resolve`` methods.
    """
    carrier = ScimFilter[model](Present(path))  # type: ignore[valid-type]
    if comparison:
        return carrier.resolve_comparison(path, strict=strict)
    return carrier.resolve(path, strict=strict)


def validate_operator(binding: AttributeBinding, op: CompareOperator) -> None:
    """Raise ``InvalidFilterException`` where scim2-models refuses ``op`` on the attribute.

    Ordering and substring operators on booleans and binary values, anything but ``eq``/``ne`` on
    a write-only attribute (RFC 7644 §3.4.2.2, RFC 7643 §4.1.1).
    """
    _validate_operator(binding, op)


def validate_value_selection(binding: AttributeBinding) -> None:
    """Raise ``InvalidFilterException`` on a value path (``x[...]``) over a single-valued attribute."""
    _validate_value_selection(binding)
