//! Programs the compiler must refuse, each with a line:column and a message that names the
//! problem; and the published-style examples that must compile.

use rexe_chain::lang::compile;

/// Compiles `body` inside a contract with some state, expecting an error at `line:col`
/// whose message contains `needle`.
fn rejects(src: &str, line: u32, col: u32, needle: &str) {
    let errs = match compile(src) {
        Ok(_) => panic!("compiled, expected an error containing {needle:?}:\n{src}"),
        Err(e) => e,
    };
    let hit = errs
        .0
        .iter()
        .find(|e| e.message.contains(needle))
        .unwrap_or_else(|| panic!("no error containing {needle:?}; got:\n{errs}"));
    assert_eq!(
        (hit.pos.line, hit.pos.col),
        (line, col),
        "error {hit} at the wrong place"
    );
}

const HEAD: &str = "contract C {\n  @global uint32 g;\n  @shard uint64 s;\n  @address bigint bal;\n  @uint32 bool taken;\n";

fn with(body: &str) -> String {
    format!("{HEAD}{body}\n}}")
}

#[test]
fn writing_another_scopes_state() {
    rejects(
        &with("  @address function f() export {\n    g = 1u;\n  }"),
        7,
        5,
        "only @global functions can change it",
    );
    rejects(
        &with("  @shard function f() {\n    bal += 1ib;\n  }"),
        7,
        5,
        "cannot be used in a @shard function",
    );
    rejects(
        &with("  function f() {\n    s = 1u64;\n  }"),
        7,
        5,
        "cannot be used in a @global function",
    );
    rejects(
        &with("  @uint32 function f() {\n    bal = 0ib;\n  }"),
        7,
        5,
        "cannot be used in a @uint32 function",
    );
    rejects(
        &with("  @address function f() const {\n    bal = 0ib;\n  }"),
        7,
        5,
        "const",
    );
    // Reading global state and writing shard state from an address function are fine.
    compile(&with(
        "  @address function f() export {\n    s += uint64(g);\n    bal += 1ib;\n  }",
    ))
    .unwrap();
}

#[test]
fn relay_rules() {
    rejects(
        &with("  @address function f(address a) export {\n    relay@a nope(1);\n  }"),
        7,
        13,
        "not a function of this contract",
    );
    rejects(
        &with("  @address function f(address a) export {\n    relay@a h();\n  }\n  @shard function h() {}"),
        7,
        13,
        "is a @shard function",
    );
    // relay@shards broadcasts from any scope (PREDA spec 3.7), to @shard functions only.
    rejects(
        &with("  @address function f() {\n    relay@shards h();\n  }\n  @address function h() {}"),
        7,
        18,
        "this relay runs in @shard scope, but `h` is a @address function",
    );
    rejects(
        &with("  function f() {\n    relay@global () { g = 2u; }\n  }"),
        7,
        5,
        "cannot be used in a @global function",
    );
    rejects(
        &with("  @shard function f() {\n    relay@next () { }\n  }"),
        7,
        5,
        "cannot be used in @shard functions",
    );
    rejects(
        &with("  @address function f(int64 k) {\n    relay@k () { }\n  }"),
        7,
        11,
        "relay target must be",
    );
    rejects(
        &with("  @address function f(address a) const {\n    relay@a () { }\n  }"),
        7,
        5,
        "const function cannot relay",
    );
    compile(&with("  @address function f(uint32 k) export {\n    relay@k () { taken = true; }\n    relay@global () { g++; }\n  }")).unwrap();
}

#[test]
fn wrong_argument_types_and_counts() {
    rejects(
        &with("  @address function f() {\n    h(1u64);\n  }\n  @address function h(address a) {}"),
        7,
        7,
        "expected address, found uint64",
    );
    rejects(
        &with("  @address function f() {\n    h();\n  }\n  @address function h(address a) {}"),
        7,
        6,
        "takes 1 argument(s), 0 given",
    );
    rejects(
        &with("  @address function f(address a) {\n    relay@a h(5u8);\n  }\n  @address function h(bigint x) {}"),
        7,
        15,
        "expected bigint, found uint8",
    );
    rejects(
        &with("  @address function f() {\n    uint8 x = 300;\n  }"),
        7,
        15,
        "300 is out of range for uint8",
    );
    rejects(
        &with(
            "  @address function f() {\n    uint32 x = 1u;\n    uint64 y = 2u64;\n    x = y;\n  }",
        ),
        9,
        9,
        "expected uint32, found uint64",
    );
    rejects(&with("  @address function f() {\n    int32 x = 1;\n    uint32 y = 1u;\n    bool b = x < y;\n  }"), 9, 16, "different types");
    rejects(
        &with("  @address function uint32 f() {\n    return true;\n  }"),
        7,
        12,
        "expected uint32, found bool",
    );
}

#[test]
fn undeclared_names() {
    rejects(
        &with("  @address function f() {\n    x = 1;\n  }"),
        7,
        5,
        "undeclared name `x`",
    );
    rejects(
        &with("  @address function f() {\n    uint32 y = z + 1u;\n  }"),
        7,
        16,
        "undeclared name `z`",
    );
    rejects(
        &with("  @address function f() {\n    nothing();\n  }"),
        7,
        5,
        "undeclared function `nothing`",
    );
    rejects(
        &with("  @address function f() {\n    Missing m;\n  }"),
        7,
        5,
        "unknown type `Missing`",
    );
    rejects(
        &with("  @address function f() {\n    { uint32 t = 1u; }\n    t = 2u;\n  }"),
        8,
        5,
        "undeclared name `t`",
    );
    rejects(
        &with("  @address function f() {\n    uint32 t = 1u;\n    { uint32 t = 2u; }\n  }"),
        8,
        14,
        "shadowing",
    );
}

#[test]
fn calls_across_scopes_and_to_system_functions() {
    // A non-const global function is reachable only with relay@global.
    rejects(
        &with("  @address function f() {\n    h();\n  }\n  function h() { g = 1u; }"),
        7,
        5,
        "use relay@global h",
    );
    // An address function cannot be called from a shard function.
    rejects(
        &with("  @shard function f() {\n    h();\n  }\n  @address function h() {}"),
        7,
        5,
        "cannot be called from a @shard function",
    );
    // A const function cannot call a non-const one.
    rejects(
        &with("  @address function f() const {\n    h();\n  }\n  @address function h() {}"),
        7,
        5,
        "not const",
    );
    // System functions are called by the system only.
    rejects(
        &with("  function f() {\n    on_deploy();\n  }\n  function on_deploy() {}"),
        7,
        5,
        "called by the system only",
    );
    rejects(
        &with("  function on_scaleout(bool b) {}"),
        6,
        12,
        "on_scaleout must be declared",
    );
    // Const global functions are callable from any scope.
    compile(&with("  @address function f() export {\n    bal = bigint(h());\n  }\n  function uint32 h() const { return g; }")).unwrap();
}

#[test]
fn structural_errors() {
    rejects(
        "contract C {\n  function f() {\n    for (;;) { }\n    break;\n  }\n}",
        4,
        5,
        "outside a loop",
    );
    rejects(
        "contract C {\n  function uint32 f() {\n    if (true) { return 1u; }\n  }\n}",
        2,
        19,
        "must end with a return",
    );
    rejects(
        "contract C {\n  struct S { S inner; }\n}",
        2,
        10,
        "contains itself",
    );
    rejects(
        "contract C {\n  @address map<array<uint8>, bool> m;\n}",
        2,
        12,
        "cannot be a map key",
    );
    rejects(
        "contract C {\n  @address float256 f;\n}",
        2,
        12,
        "`float256` is not supported: every node must compute the same bits",
    );
    rejects(
        "contract C {\n  @address uint32 a;\n  @global uint32 a;\n}",
        3,
        18,
        "already defined",
    );
    // A lone source has nothing to import from; the error says where imports come from.
    rejects(
        "import X.Y;\ncontract C { }",
        1,
        10,
        "`import Y`: no deployed contracts are known here: imports are bound when the contract is deployed",
    );
    rejects(
        "contract C { interface I { @address function f() { } } }",
        1,
        50,
        "an interface's functions have no body",
    );
    rejects(
        "contract C { @address function f() export { g(); } @address function g() public { deploy C(); } }",
        1,
        83,
        "`deploy` is allowed only inside a non-const @global function",
    );
    rejects(
        "contract C {\n  function f() {\n    uint32 x = 1u +;\n  }\n}",
        3,
        20,
        "expected an expression",
    );
}

#[test]
fn examples_compile() {
    for (name, src) in [
        ("token", include_str!("../../examples/contracts/token.prd")),
        (
            "ballot",
            include_str!("../../examples/contracts/ballot.prd"),
        ),
        (
            "counter",
            include_str!("../../examples/contracts/counter.prd"),
        ),
        ("amm", include_str!("../../examples/contracts/amm.prd")),
        (
            "pixels",
            include_str!("../../examples/contracts/pixels.prd"),
        ),
        (
            "million_pixel",
            include_str!("../../examples/contracts/million_pixel.prd"),
        ),
    ] {
        if let Err(e) = compile(src) {
            panic!("{name}:\n{e}");
        }
    }
}
