//! The memory store keeps the contract every store keeps (`common/contract.rs`), in real
//! time like the others; its bounds and eviction are tested beside it, in `store/memory.rs`.

use palisade_idempotency::store::MemoryStore;

mod common;

#[tokio::test]
async fn the_store_contract_holds() {
    common::contract::holds(&MemoryStore::new()).await;
}
