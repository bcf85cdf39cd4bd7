//! `lift.matching.v1.MatchingService` over tonic: thin handlers around [`Matching`],
//! behind the runtime's authentication layer (see `auth`).

use lift_proto::matching::v1 as pb;
use lift_proto::matching::v1::matching_service_server::{MatchingService, MatchingServiceServer};
use lift_runtime::layer::{AuthLayer, AuthService};
use tonic::{Request, Response, Status};

use crate::Matching;
use crate::service::WatchOffersStream;

/// The tonic service type [`Matching::grpc`] returns.
pub type MatchingServer = AuthService<MatchingServiceServer<Matching>>;

impl Matching {
    /// This service as a tonic server behind the brand guard (the runtime's
    /// authentication layer over matching's key store), ready for `lift_runtime::serve`.
    pub fn grpc(&self) -> MatchingServer {
        tower::Layer::layer(&AuthLayer::tenant(self.guard()), MatchingServiceServer::new(self.clone()))
    }
}

#[tonic::async_trait]
impl MatchingService for Matching {
    #[tracing::instrument(skip_all)]
    async fn create_campaign(
        &self,
        req: Request<pb::CreateCampaignRequest>,
    ) -> Result<Response<pb::CreateCampaignResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        let campaign = self.create_campaign(&brand, req.get_ref().spec.as_ref()).await?;
        Ok(Response::new(pb::CreateCampaignResponse { campaign: Some(campaign) }))
    }

    #[tracing::instrument(skip_all, fields(campaign = %req.get_ref().campaign_id))]
    async fn get_campaign(
        &self,
        req: Request<pb::GetCampaignRequest>,
    ) -> Result<Response<pb::GetCampaignResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        let campaign = self.get_campaign(&brand, &req.get_ref().campaign_id).await?;
        Ok(Response::new(pb::GetCampaignResponse { campaign: Some(campaign) }))
    }

    #[tracing::instrument(skip_all, fields(page_size = req.get_ref().page_size))]
    async fn list_campaigns(
        &self,
        req: Request<pb::ListCampaignsRequest>,
    ) -> Result<Response<pb::ListCampaignsResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        Ok(Response::new(self.list_campaigns(&brand, req.get_ref()).await?))
    }

    #[tracing::instrument(skip_all, fields(campaign = %req.get_ref().campaign_id, page_size = req.get_ref().page_size))]
    async fn match_campaign(
        &self,
        req: Request<pb::MatchCampaignRequest>,
    ) -> Result<Response<pb::MatchCampaignResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        let resp = self.match_campaign(&brand, req.get_ref()).await?;
        tracing::debug!(eligible = resp.total_eligible, model = %resp.model_version, "matched");
        Ok(Response::new(resp))
    }

    #[tracing::instrument(skip_all, fields(campaign = %req.get_ref().campaign_id))]
    async fn select_portfolio(
        &self,
        req: Request<pb::SelectPortfolioRequest>,
    ) -> Result<Response<pb::SelectPortfolioResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        Ok(Response::new(self.select_portfolio(&brand, req.get_ref()).await?))
    }

    #[tracing::instrument(skip_all, fields(campaign = %req.get_ref().campaign_id))]
    async fn create_offers(
        &self,
        req: Request<pb::CreateOffersRequest>,
    ) -> Result<Response<pb::CreateOffersResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        Ok(Response::new(self.create_offers(&brand, req.get_ref()).await?))
    }

    #[tracing::instrument(skip_all, fields(campaign = %req.get_ref().campaign_id))]
    async fn get_campaign_report(
        &self,
        req: Request<pb::GetCampaignReportRequest>,
    ) -> Result<Response<pb::GetCampaignReportResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        Ok(Response::new(self.campaign_report(&brand, req.get_ref()).await?))
    }

    #[tracing::instrument(skip_all, fields(campaign = %req.get_ref().campaign_id, to = req.get_ref().to_state))]
    async fn transition_offer(
        &self,
        req: Request<pb::TransitionOfferRequest>,
    ) -> Result<Response<pb::TransitionOfferResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        Ok(Response::new(self.transition_offer(&brand, req.get_ref()).await?))
    }

    #[tracing::instrument(skip_all, fields(campaign = %req.get_ref().campaign_id))]
    async fn list_offers(
        &self,
        req: Request<pb::ListOffersRequest>,
    ) -> Result<Response<pb::ListOffersResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        Ok(Response::new(self.list_offers(&brand, req.get_ref()).await?))
    }

    type WatchOffersStream = WatchOffersStream;

    #[tracing::instrument(skip_all, fields(campaign = %req.get_ref().campaign_id, after = req.get_ref().after_offset))]
    async fn watch_offers(
        &self,
        req: Request<pb::WatchOffersRequest>,
    ) -> Result<Response<Self::WatchOffersStream>, Status> {
        let brand = Matching::brand(req.extensions())?;
        Ok(Response::new(self.watch_offers(&brand, req.get_ref()).await?))
    }

    #[tracing::instrument(skip_all, fields(currency = %req.get_ref().currency, rates = req.get_ref().rates.len()))]
    async fn set_rate_card(
        &self,
        req: Request<pb::SetRateCardRequest>,
    ) -> Result<Response<pb::SetRateCardResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        Ok(Response::new(self.set_rate_card(&brand, req.get_ref()).await?))
    }

    #[tracing::instrument(skip_all, fields(currency = %req.get_ref().currency))]
    async fn get_rate_card(
        &self,
        req: Request<pb::GetRateCardRequest>,
    ) -> Result<Response<pb::GetRateCardResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        Ok(Response::new(self.get_rate_card(&brand, req.get_ref()).await?))
    }

    #[tracing::instrument(skip_all, fields(campaign = %req.get_ref().campaign_id))]
    async fn start_standing_program(
        &self,
        req: Request<pb::StartStandingProgramRequest>,
    ) -> Result<Response<pb::StartStandingProgramResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        Ok(Response::new(self.start_standing_program(&brand, req.get_ref()).await?))
    }

    #[tracing::instrument(skip_all, fields(campaign = %req.get_ref().campaign_id))]
    async fn get_standing_program(
        &self,
        req: Request<pb::GetStandingProgramRequest>,
    ) -> Result<Response<pb::GetStandingProgramResponse>, Status> {
        let brand = Matching::brand(req.extensions())?;
        Ok(Response::new(self.get_standing_program(&brand, req.get_ref()).await?))
    }
}
