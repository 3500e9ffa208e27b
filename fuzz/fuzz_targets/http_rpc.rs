//! The JSON-RPC servers' HTTP layer on arbitrary bytes: one client connection to hyper with
//! the servers' settings (`rexe_rpc::http::serve_connection`) in front of a handler going
//! through `rexe_rpc::http::read_jsonrpc` (credentials on the head, then a bounded body,
//! then the JSON-RPC requests), as the L2 node's and the regtest node's handlers do. Nothing
//! panics or hangs, the output is HTTP/1.1, nothing is answered 200 or admitted without the
//! credential, and no batch over the limit is admitted (`rexe_rpc::probe::Exchange::check`).
#![no_main]

use libfuzzer_sys::fuzz_target;

thread_local! {
    static RT: tokio::runtime::Runtime = rexe_rpc::probe::runtime();
}

fuzz_target!(|data: &[u8]| {
    RT.with(|rt| rexe_rpc::probe::exchange(rt, data)).check();
});
