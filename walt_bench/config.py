"""Base class and shared field types for the spec sections.

Every package owns the pydantic model of its own section (``data/config.py``,
``denoiser/config.py``, ...); ``spec.py`` composes them into :class:`~walt_bench.spec.ExperimentSpec`
and adds the checks that span sections. This module imports nothing but pydantic.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]


class Section(BaseModel):
    """A spec section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
