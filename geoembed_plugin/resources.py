"""Where the plugin's resources are: ``resources/`` beside the package when deployed, ``../resources`` in the
source tree."""

import os

from qgis.PyQt.QtGui import QIcon

_HERE = os.path.dirname(os.path.abspath(__file__))


def resources_dir():
    for candidate in (os.path.join(_HERE, "resources"), os.path.join(os.path.dirname(_HERE), "resources")):
        if os.path.isdir(candidate):
            return candidate
    return os.path.join(_HERE, "resources")


def resource_path(*parts):
    return os.path.join(resources_dir(), *parts)


def icon(name):
    return QIcon(resource_path("icons", name))
