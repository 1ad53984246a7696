"""A module that leaves a thread running once imported: a zygote that imports it must not fork."""

from tests.warm_targets import start_a_thread

start_a_thread()
