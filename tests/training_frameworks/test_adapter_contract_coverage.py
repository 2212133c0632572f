"""The adapter contract (test_adapter_contract.py) runs over a hand-written list of model types with
tiny parameters; these tests keep that list equal to what the portal can actually train, so a new
built-in or plugin model type cannot ship without passing the contract."""

import portal_example_models

from apps.frameworks import FRAMEWORKS, get_adapter
from apps.frameworks.discovery import catalog, plugin_errors

from .support import COMBOS, TINY_PARAMS, task_of


def test_the_contract_covers_every_model_type_the_catalog_can_train_and_nothing_else():
    registered = set(catalog().types)
    contracted = set(TINY_PARAMS)
    assert registered - contracted == set(), "model types without tiny parameters in support.TINY_PARAMS"
    assert contracted - registered == set(), "contract entries for model types no longer registered"


def test_the_contract_runs_each_model_type_on_exactly_the_tasks_it_declares():
    for (framework, name), model_type in catalog().types.items():
        covered = {task_of(kind) for fw, mt, kind in COMBOS if (fw, mt) == (framework, name)}
        assert covered == set(model_type.tasks), (framework, name)
        # Classification is run both as binary and as multiclass: the two paths differ in every adapter.
        if "classification" in model_type.tasks:
            kinds = {kind for fw, mt, kind in COMBOS if (fw, mt) == (framework, name)}
            assert {"binary", "multiclass"} <= kinds, (framework, name)


def test_every_model_type_of_the_example_plugin_package_is_registered_without_errors():
    assert plugin_errors() == []
    for cls in portal_example_models.MODEL_TYPES:
        registered = catalog().get(cls.framework, cls.name)
        assert type(registered) is cls, f"{cls.framework}/{cls.name} is not the plugin's own class"


def test_the_tiny_parameters_are_valid_for_their_model_type():
    # A typo in TINY_PARAMS would otherwise fall back to a default silently or fail far from its cause.
    for (framework, name), params in TINY_PARAMS.items():
        adapter = get_adapter(framework)
        validated = adapter.validate_params(name, params)
        assert {key: validated[key] for key in params} == params, (framework, name)
    assert {framework for framework, _ in TINY_PARAMS} == set(FRAMEWORKS)
