"""Role files rendered as Ansible renders them, for the tests of roles' vars and tables:
pytest puts this folder on sys.path (the default prepend import mode)."""

from __future__ import annotations

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template


def trusted(value):
    """Role files as Ansible reads them: their strings are templates."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value


def templar(variables: dict, filters: dict | None = None) -> Templar:
    """Ansible's templating over `variables` as Ansible reads them, with a collection's
    filters (name -> function, e.g. a FilterModule's filters()) by their FQCN rlops.fleet.<name>,
    as in a play (put on the environment: the collection loader is not asked)."""
    engine = Templar(loader=DataLoader(), variables=trusted(variables))
    for name, function in (filters or {}).items():
        engine.environment.filters[f"rlops.fleet.{name}"] = function
    return engine


def renderer(variables: dict):
    """A function that renders an expression with `variables` (a role's defaults, vars, facts
    and inputs)."""
    templar = Templar(loader=DataLoader(), variables=trusted(variables))
    return lambda expression: templar.template(trust_as_template("{{ " + expression + " }}"))
