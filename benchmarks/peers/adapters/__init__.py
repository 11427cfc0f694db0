"""One adapter per library, each run with ``python -m adapters.<lib>`` inside that library's venv.

They are a package (not loose scripts) so that ``adapters/arq.py`` is the module
``adapters.arq`` and ``import arq`` inside it still finds the real library.
"""
