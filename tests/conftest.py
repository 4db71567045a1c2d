"""Test-session set-up shared by every test module."""

from tests._torchvision import allow_import

allow_import()
