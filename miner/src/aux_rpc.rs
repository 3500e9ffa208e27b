//! The aux RPC that merge-mining pools call, as Namecoin Core answers it
//! (`src/rpc/auxpow_miner.cpp`): `createauxblock <address>` / `submitauxblock <hash>
//! <auxpow>`, and `getauxblock` in both forms. Work is kept per block hash and dropped when
//! the tip changes, so a late submission gets error -8 "block hash unknown".

use std::collections::HashMap;

use bitcoin::hex::DisplayHex;
use rexe_chain::{Address, Block, BlockHash, Chain, SubmitOutcome};
use serde_json::{json, Value};

use crate::auxpow::{decode_hex, ChainId};

/// An error for the RPC layer: JSON-RPC code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuxRpcError {
    /// JSON-RPC error code (Core's).
    pub code: i64,
    /// Message.
    pub message: String,
}

fn err(code: i64, m: impl Into<String>) -> AuxRpcError {
    AuxRpcError {
        code,
        message: m.into(),
    }
}

/// Templates handed out to pools, by block hash.
#[derive(Default)]
pub struct AuxWork {
    tip: Option<BlockHash>,
    blocks: HashMap<BlockHash, Block>,
}

/// Most templates kept per tip (oldest dropped first when exceeded).
const MAX_TEMPLATES: usize = 1000;

impl AuxWork {
    fn sync_tip(&mut self, chain: &Chain) {
        if self.tip != Some(chain.tip_hash()) {
            self.blocks.clear();
            self.tip = Some(chain.tip_hash());
        }
    }

    /// `createauxblock <address>`: a new block paying `address`, in Namecoin's JSON
    /// (plus Dogecoin's `target`).
    pub fn create(
        &mut self,
        chain: &mut Chain,
        miner: Address,
        now: u64,
        chain_id: ChainId,
    ) -> Result<Value, AuxRpcError> {
        self.sync_tip(chain);
        let block = chain
            .template(miner, now)
            .map_err(|e| err(-1, e.to_string()))?;
        let h = &block.header;
        let hash = h.hash();
        let target_le = h.target().to_le_bytes().to_lower_hex_string();
        // Subsidy plus tips (base fees are burned, not paid to the miner).
        let value = chain.params().subsidy(h.height).to_sat()
            + chain.template_tips(hash).map_or(0, |a| a.to_sat());
        let v = json!({
            "hash": hash.to_string(),
            "chainid": chain_id.0,
            "previousblockhash": h.prev.to_string(),
            "coinbasevalue": value,
            "bits": format!("{:08x}", h.bits),
            "height": h.height,
            "_target": target_le,
            "target": target_le,
        });
        if self.blocks.len() >= MAX_TEMPLATES {
            self.blocks.clear();
        }
        self.blocks.insert(hash, block);
        Ok(v)
    }

    /// `submitauxblock <hash> <auxpow>`: `true` when the block connected (or was kept on a
    /// side branch), `false` when it was rejected; error -8 for an unknown hash.
    pub fn submit(
        &mut self,
        chain: &mut Chain,
        hash: &str,
        auxpow_hex: &str,
        now: u64,
    ) -> Result<Value, AuxRpcError> {
        self.sync_tip(chain);
        let hash: BlockHash = hash
            .parse()
            .map_err(|_| err(-8, "hash must be 64 hex digits"))?;
        let Some(mut block) = self.blocks.get(&hash).cloned() else {
            return Err(err(-8, "block hash unknown"));
        };
        let aux = decode_hex(auxpow_hex).map_err(|e| err(-1, e.to_string()))?;
        block.seal = aux.encode();
        // Accepted means in the durable block log.
        match chain.submit_logged(block, now) {
            Ok(SubmitOutcome::Connected)
            | Ok(SubmitOutcome::Reorged { .. })
            | Ok(SubmitOutcome::SideBranch) => {
                self.sync_tip(chain);
                Ok(json!(true))
            }
            Err(e) => {
                tracing::info!(%hash, error = %e, "submitauxblock rejected");
                Ok(json!(false))
            }
        }
    }
}
