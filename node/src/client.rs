//! A client of an L2 node over its JSON-RPC for whoever signs with an L2 key: the CLI's
//! transfers and contract calls and the peg agents. It picks the nonce (after the sender's
//! transactions waiting in the mempool), the fees (explicit or the node's estimate) and the
//! expiry, signs, submits, and reads receipts and peg state.

use std::time::{Duration, Instant};

use crate::error::{Error, Purpose as _, Result};
use bitcoin::hex::DisplayHex;
use rexe_bridge::call::PegCall;
use rexe_chain::encode::Encode;
use rexe_chain::system::SystemId;
use rexe_chain::{Amount, Network, Payload, SignedTx, Signer, Tx, Txid};
use serde_json::{json, Value};

use crate::api::CallReceipt;
use crate::peer::Peer;

/// An L2 node plus the key that signs our calls.
pub struct L2Client {
    peer: Peer,
    signer: Signer,
    network: Network,
    /// Max fee and tip per gas (unset ones: the node's estimate for each call).
    pub fees: crate::fees::FeeArgs,
}

/// A fault-injection point for crash tests: when the `REXE_FAILPOINT` environment variable
/// names `point`, the process aborts there (as a `kill -9` would stop it).
pub fn failpoint(point: &str) {
    if std::env::var("REXE_FAILPOINT").is_ok_and(|v| v == point) {
        eprintln!("failpoint {point}: aborting");
        std::process::abort();
    }
}

/// The L2 network named by `getchaininfo`.
pub fn network_named(name: &str) -> Result<Network> {
    Network::from_name(name)
        .ok_or_else(|| Error::Peer(format!("node reports unknown network {name:?}")))
}

/// The L2 network a node runs (`getchaininfo`).
pub fn network_of(peer: &Peer) -> Result<Network> {
    let info: crate::api::ChainInfo = peer
        .call_as("getchaininfo", json!([]))
        .purpose(|| format!("asking the L2 node at {} for its chain", peer.addr))?;
    network_named(&info.network)
}

impl L2Client {
    /// Connects (asks the node its network).
    pub fn connect(peer: Peer, signer: Signer, fees: crate::fees::FeeArgs) -> Result<Self> {
        let network = network_of(&peer)?;
        Ok(L2Client {
            peer,
            signer,
            network,
            fees,
        })
    }

    /// The L2 network.
    pub fn network(&self) -> Network {
        self.network
    }

    /// Our L2 address.
    pub fn signer_address(&self) -> rexe_chain::Address {
        self.signer.address()
    }

    /// Our L2 address, encoded.
    pub fn address(&self) -> String {
        self.signer.address().encode(self.network)
    }

    /// One RPC call.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.peer.call(method, params)
    }

    /// Signs and submits a peg call with `value` sats attached; returns its txid.
    pub fn send(&self, value: u64, call: &PegCall) -> Result<Txid> {
        let tx = self.build(value, call)?;
        self.submit(&tx, call.name())?;
        Ok(tx.txid())
    }

    /// Signs a peg call with `value` sats attached at our next nonce (after our transactions
    /// waiting in the mempool), without sending it: agents persist it first, so that after a
    /// crash they resend the very same transaction instead of a second one.
    pub fn build(&self, value: u64, call: &PegCall) -> Result<SignedTx> {
        let payload = Payload::Call {
            contract: SystemId::PEG,
            value: Amount::from_sat(value),
            data: call.encode(),
        };
        let gas = rexe_chain::contract::intrinsic_gas(&payload);
        self.build_payload(payload, gas)
    }

    /// Signs `payload` with `gas_limit` at our next nonce, with our fees, expiring 100 blocks
    /// from the tip (without sending it).
    pub fn build_payload(&self, payload: Payload, gas_limit: u64) -> Result<SignedTx> {
        let nonce = self.next_nonce()?;
        let height = self.call("getblockcount", json!([]))?.as_u64().unwrap_or(0);
        let fees = self.fees.pick(&self.peer, &self.address())?;
        Ok(Tx {
            network: self.network,
            from: self.signer.address(),
            nonce,
            max_fee: fees.max_fee,
            max_tip: fees.max_tip,
            gas_limit,
            expiry_height: height + 100,
            payload,
        }
        .sign(&self.signer))
    }

    /// Submits a signed transaction; its txid as the node reports it.
    pub fn send_tx(&self, tx: &SignedTx) -> Result<Txid> {
        self.call(
            "sendrawtransaction",
            json!([tx.to_bytes().to_lower_hex_string()]),
        )?;
        Ok(tx.txid())
    }

    /// Submits a signed transaction (`what` names it in errors).
    pub fn submit(&self, tx: &SignedTx, what: &str) -> Result<()> {
        self.submit_hex(&tx.to_bytes().to_lower_hex_string(), what)
    }

    /// Submits a signed transaction given as hex (`what` names it in errors).
    pub fn submit_hex(&self, tx_hex: &str, what: &str) -> Result<()> {
        self.call("sendrawtransaction", json!([tx_hex]))
            .purpose(|| format!("submitting the peg {what} call"))?;
        Ok(())
    }

    /// Our account's (confirmed nonce, next nonce after our pending transactions).
    pub fn nonces(&self) -> Result<(u64, u64)> {
        let acct: crate::api::AccountInfo =
            self.peer.call_as("getaccount", json!([self.address()]))?;
        Ok((acct.nonce, acct.next_nonce))
    }

    fn next_nonce(&self) -> Result<u64> {
        Ok(self.nonces()?.1)
    }

    /// The call's receipt once it has run: `Ok(None)` while pending.
    pub fn receipt(&self, txid: Txid) -> Result<Option<CallReceipt>> {
        match self
            .peer
            .call_as("getcallreceipt", json!([txid.to_string()]))
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the transaction is still known to the node (mempool or chain).
    pub fn tx_known(&self, txid: Txid) -> Result<bool> {
        match self.call("gettransaction", json!([txid.to_string()])) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until the call has run; errors with the contract's message if it failed.
    pub fn wait(&self, txid: Txid, timeout: Duration) -> Result<CallReceipt> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.receipt(txid)? {
                if r.success {
                    return Ok(r);
                }
                return Err(Error::CallRefused {
                    txid,
                    message: r.error.unwrap_or_else(|| "unknown error".into()),
                });
            }
            if Instant::now() > deadline {
                return Err(Error::CallNotRun {
                    txid,
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `getpeginfo`.
    pub fn peg_info(&self) -> Result<crate::api::PegInfo> {
        self.peer.peg_info()
    }

    /// The node this client talks to.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }
}
