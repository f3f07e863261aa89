# ngx_teleclinic: build, run and test.
#
#   make            build build/ngx_http_teleclinic_module.so
#   make run        install what is missing, build, run nginx in the
#                   foreground with conf/ and demo data (PORT=8080)
#   make run NODES=2  the same as a group of nodes: Redis under Sentinel
#                   and nginx on PORT, PORT+1, ... (bin/teleclinic-cluster)
#   make test       install what is missing, build, run the whole suite
#   make test ASAN=1  the same with the module built with AddressSanitizer
#   make asan-check the tests of what ends on another event (thread pool,
#                   Redis, relayed connections) under AddressSanitizer;
#                   part of make test
#   make fuzz       build the libFuzzer targets and run each for FUZZ_SECONDS

SHELL      := /bin/bash
REPO       := $(abspath .)
ifeq ($(ASAN),1)
BUILD      := $(REPO)/build/asan
else
BUILD      := $(REPO)/build
endif
NGX_SRC    := /usr/share/nginx/src
MODULE     := $(BUILD)/ngx_http_teleclinic_module.so
PORT       ?= 8080
TURN_PORT  ?= 3478
NODES      ?= 1
REDIS_PORT ?=
VAR        := $(REPO)/var
FUZZ_SECONDS ?= 20



CFLAGS_EXTRA := -Werror -Wall -Wextra -Wno-unused-parameter
ifeq ($(ASAN),1)
CFLAGS_EXTRA += -fsanitize=address -fno-omit-frame-pointer -g
LDFLAGS_EXTRA := -fsanitize=address
endif

SRCS := $(wildcard src/*.c src/*.h src/*/*.c src/*/*.h) config

# What finishes on another event than the one that began it (a thread
# pool's task, a Redis reply, a relayed connection) is where a pointer
# into a returned stack frame hides: these run once more with the module
# built with AddressSanitizer, which sees that too (the harness sets
# detect_stack_use_after_return)
ASAN_TESTS := t/073-room-reload.t t/085-snapshot.t t/088-snapshot-rotation.t \
              t/121-nodes.t t/127-nodes-redis-away.t

.PHONY: all deps run test asan-check fuzz bench bench-turn clean

all: $(MODULE)

$(BUILD)/Makefile: config
	mkdir -p $(BUILD)
	cd $(NGX_SRC) && . ./conf_flags && ./configure \
	    --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $$(dpkg-buildflags --get CPPFLAGS) $(CFLAGS_EXTRA)" \
	    --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC $(LDFLAGS_EXTRA)" \
	    "$${NGX_CONF_FLAGS[@]}" --with-stream=dynamic \
	    --add-dynamic-module=$(REPO) --builddir=$(BUILD) > $(BUILD)/configure.log 2>&1 \
	    || { tail -30 $(BUILD)/configure.log; exit 1; }

$(MODULE): $(BUILD)/Makefile $(SRCS)
	$(MAKE) -f $(BUILD)/Makefile -C $(NGX_SRC) $(MODULE)

deps:
	@./.ci/deps

run: deps $(MODULE)
ifeq ($(filter-out 1,$(strip $(NODES))),)
	@./bin/teleclinic-run $(PORT) $(TURN_PORT)
else
	@./bin/teleclinic-cluster $(NODES) $(PORT) $(TURN_PORT) $(REDIS_PORT)
endif

test: deps $(MODULE)
	TELECLINIC_MODULE=$(MODULE) TELECLINIC_ASAN=$(ASAN) prove -r t/
ifneq ($(ASAN),1)
	@$(MAKE) --no-print-directory asan-check
endif
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

asan-check: deps
	@$(MAKE) --no-print-directory ASAN=1 all
	TELECLINIC_MODULE=$(REPO)/build/asan/ngx_http_teleclinic_module.so \
	    TELECLINIC_ASAN=1 prove $(ASAN_TESTS)

fuzz: deps $(BUILD)/Makefile
	@$(MAKE) --no-print-directory -C fuzz run SECONDS=$(FUZZ_SECONDS) BUILD=$(BUILD)

bench: deps $(MODULE)
	./bench/booking.sh
	./bench/record.sh
	./bench/restart.sh
	./bench/turn.sh
	./bench/room.sh
	./bench/nodes.sh

bench-turn: deps $(MODULE)
	./bench/turn.sh

clean:
	rm -rf $(BUILD)
