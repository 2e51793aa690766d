//! The identity capability's rules, case by case (given a party's state,
//! when an event arrives, then it is accepted with these effects or refused
//! for this reason with nothing changed), and the capability conformance suite.

mod authority;
mod code;
mod conformance;
mod device;
mod fixture;
mod image;
mod openpgp;
mod query;
mod replicated_rules;
mod service;
