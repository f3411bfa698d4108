//! Storyboards through the renderer: each sprite sheet made once however
//! many ask at the same time, and cached (in memory, and in the shared
//! tier) under its request. The first sheet's render plans every tile, so
//! its layout lists the whole storyboard: the WebVTT and JSON are made
//! from it, and a later sheet is made from it ([`Part::Later`]), so every
//! sheet agrees with the description whichever node made it.

use std::sync::Arc;

use super::{CacheStatus, RenderError, Renderer, Sequence, SequenceKey};
use crate::media::segmented::{self, Video};
use crate::media::storyboard::{self, Layout, Part, StoryboardLimits};
use crate::request::storyboard::StoryboardRequest;

impl Renderer {
    /// Most tiles one storyboard may have (`pictures.storyboard_max_tiles`):
    /// a request for more is refused before anything is read.
    pub fn storyboard_max_tiles(&self) -> u32 {
        self.pictures.storyboard_max_tiles
    }

    /// The first sheet of `req`'s storyboard (whatever `req.sheet` says),
    /// its layout listing every tile of every sheet; the whole storyboard
    /// when it fits on one sheet.
    pub async fn storyboard(
        &self,
        req: &StoryboardRequest,
    ) -> Result<(Arc<Sequence>, CacheStatus), Arc<RenderError>> {
        self.storyboard_sheet(&req.on_sheet(0), None).await
    }

    /// Sheet `req.sheet` (1 on) of a storyboard whose first sheet's layout
    /// is `whole`; the caller has checked that it is one of
    /// [`Layout::sheets`].
    pub async fn storyboard_later_sheet(
        &self,
        req: &StoryboardRequest,
        whole: Layout,
    ) -> Result<(Arc<Sequence>, CacheStatus), Arc<RenderError>> {
        self.storyboard_sheet(req, Some(whole)).await
    }

    /// Sheet `req.sheet`: the first when `whole` is `None`.
    async fn storyboard_sheet(
        &self,
        req: &StoryboardRequest,
        whole: Option<Layout>,
    ) -> Result<(Arc<Sequence>, CacheStatus), Arc<RenderError>> {
        let key = SequenceKey::Storyboard(req.clone());
        let spec = req.spec.clone();
        let sheet = req.sheet;
        let bounds = StoryboardLimits {
            max_pixels: self.pictures.storyboard_max_pixels,
            max_tiles: self.pictures.storyboard_max_tiles,
        };
        // The tile width chooses a streaming source's rendition, the same
        // for every sheet.
        let size = (Some(spec.tile_width), None);
        self.sequence(
            &req.org,
            &req.env,
            &req.key,
            key,
            size,
            move |video, limits| {
                let part = match &whole {
                    Some(whole) => Part::Later { sheet, whole },
                    None => Part::First,
                };
                let board = match video {
                    Video::Whole(reader) => {
                        storyboard::render(reader, &spec, part, limits, bounds)?
                    }
                    Video::Segmented(mut segments) => {
                        segmented::storyboard(&mut *segments, &spec, part, limits, bounds)?
                    }
                };
                Ok(Sequence::new(
                    board.bytes,
                    spec.format.content_type(),
                    (board.width, board.height),
                    Some(board.layout),
                    0,
                ))
            },
        )
        .await
    }
}
