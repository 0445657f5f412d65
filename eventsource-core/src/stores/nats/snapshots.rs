//! Snapshots: the stream `NAME-snapshots` keeps one message per subject
//! `NAME.s.STREAM.VERSION`; saving again at the same version replaces it.

use futures_util::TryStreamExt;
use uuid::Uuid;

use super::read::Get;
use super::{BACKEND, Inner, message};
use crate::error::{Error, Result};
use crate::persistence::position::Position;
use crate::persistence::record::Snapshot;

impl Inner {
    pub(super) async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        // The event the snapshot was taken at is usually the one this store just appended or
        // read: its sequence lets a read from the snapshot start there.
        let sequence = self.known.exact(snapshot.stream_id, snapshot.version);
        let body = message::encode_snapshot(&snapshot, sequence)?;
        self.check_size(body.len(), "save a snapshot")?;
        let subject = self.subjects.snapshot(snapshot.stream_id, snapshot.version);
        let ack = self
            .context
            .publish(subject, body.into())
            .await
            .map_err(|error| Error::backend(BACKEND, "saving a snapshot", error))?;
        ack.await
            .map_err(|error| Error::backend(BACKEND, "saving a snapshot", error))?;
        Ok(())
    }

    pub(super) async fn load_snapshot(
        &self,
        stream_id: Uuid,
        at_or_below: Option<u64>,
    ) -> Result<Option<Snapshot>> {
        let versions = self.snapshot_versions(stream_id).await?;
        let Some(version) = versions
            .into_iter()
            .filter(|version| at_or_below.is_none_or(|limit| *version <= limit))
            .max()
        else {
            return Ok(None);
        };
        let subject = self.subjects.snapshot(stream_id, version);
        let Some(found) = self.get(&self.snapshots, Get::Last(&subject)).await? else {
            return Ok(None);
        };
        let (snapshot, sequence) =
            message::decode_snapshot(&found.payload, Position::new(found.sequence))?;
        if let Some(sequence) = sequence {
            self.known.remember(stream_id, snapshot.version, sequence);
        }
        Ok(Some(snapshot))
    }

    pub(super) async fn delete_snapshots(&self, stream_id: Uuid) -> Result<u64> {
        let purged = self
            .snapshots
            .purge()
            .filter(self.subjects.snapshots_of(stream_id))
            .await
            .map_err(|error| Error::backend(BACKEND, "deleting snapshots", error))?;
        Ok(purged.purged)
    }

    /// The versions a stream has snapshots at (the subjects the snapshots stream holds for it).
    async fn snapshot_versions(&self, stream_id: Uuid) -> Result<Vec<u64>> {
        let filter = self.subjects.snapshots_of(stream_id);
        let subjects = self
            .snapshots
            .info_with_subjects(&filter)
            .await
            .map_err(|error| Error::backend(BACKEND, "listing snapshots", error))?;
        let subjects: Vec<(String, usize)> = subjects
            .try_collect()
            .await
            .map_err(|error| Error::backend(BACKEND, "listing snapshots", error))?;
        Ok(subjects
            .iter()
            .filter(|(_, count)| *count > 0)
            .filter_map(|(subject, _)| self.subjects.snapshot_version(stream_id, subject))
            .collect())
    }
}
