// Package layers holds the test that keeps Keel's dependencies pointing
// down (docs: README, "Layout"): the engine imports nothing of Keel, the
// integrations import the engine at most, and the adapters that offer
// them as agent tools live in packages of their own.
package layers
