"""pytest puts this folder on sys.path (the default prepend import mode does so for a
conftest's folder): the helpers here (trainer_inputs.py) are shared by the tests below it."""
